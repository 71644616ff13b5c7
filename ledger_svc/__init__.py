"""The double-entry points ledger of one region: transfers, expiring lots, holds, audit."""
