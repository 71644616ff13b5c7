"""Tables and queries of ledger_svc (SQLAlchemy 2.x): the only module that knows SQL."""

from sqlalchemy import MetaData

metadata = MetaData()
