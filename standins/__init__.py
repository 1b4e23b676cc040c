"""Stand-ins for tests, demos and benchmarks: never part of the production package.

``tdengine_double`` (a TDengine REST stand-in), ``local_kafka`` (a KRaft broker from
the official jars) and ``samples`` (sample trades and fee schedules).
"""
