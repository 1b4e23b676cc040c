"""The pure core: trade messages, rejections, fee schedules, fees and ledger events.

Nothing here does I/O or imports Kafka, HTTP or a database client.
"""
