"""Tables and queries of rewards_svc (SQLAlchemy 2.x): the only module that knows SQL."""

from sqlalchemy import MetaData

metadata = MetaData()
