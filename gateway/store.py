"""Tables and queries of gateway (SQLAlchemy 2.x): the only module that knows SQL."""

from sqlalchemy import MetaData

metadata = MetaData()
