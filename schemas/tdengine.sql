-- balance-sink: TDengine schema template (language-neutral).
--
-- Placeholders, filled in by worker/tdengine/schema.py (a unit test keeps the two equal):
--   {database}          database name: [A-Za-z_][A-Za-z0-9_]{0,63}, not a reserved word;
--                       always backquoted.
--   {database_options}  empty, or any of " KEEP <keep>", " DURATION <duration>",
--                       " WAL_LEVEL <1|2>" in that order, only for the options configured.
--   {key}               the composite-key keyword: PRIMARY KEY on TDengine 3.3.0.0-3.3.6.2,
--                       COMPOSITE KEY from 3.3.6.3 (read with SELECT SERVER_VERSION()).
--                       Servers older than 3.3.0.0 are refused: without a composite key,
--                       rows sharing a timestamp in one subtable would overwrite each other.
--
-- Precision is microseconds: balance_events.ts is an integer of microseconds since the epoch.
-- Row identity: (subtable, ts, event_id). Writing a row again overwrites it (idempotent).
-- Subtables are created by INSERT ... USING, one per (user_id, account_type), named
-- u{user_id}_a{account_type}; user 0 is the platform revenue account (u0_a1).

CREATE DATABASE IF NOT EXISTS `{database}` PRECISION 'us'{database_options};

CREATE STABLE IF NOT EXISTS `{database}`.`balance_events` (
    ts TIMESTAMP,
    event_id BIGINT {key},
    event_type TINYINT,
    trade_id BIGINT,
    debit_asset INT,
    debit_amt BIGINT,
    credit_asset INT,
    credit_amt BIGINT,
    fee BIGINT,
    fee_asset INT,
    is_maker BOOL,
    from_user BIGINT
) TAGS (
    user_id BIGINT,
    account_type TINYINT
);
