"""incentives_svc owns one region's campaigns, residents' habit profiles (behind PERSONALISATION consent) and the
offers made and accepted; bonuses are paid through the ledger from each campaign's budget account."""
