"""Conformance of the TDengine REST double against facts confirmed on real servers."""
