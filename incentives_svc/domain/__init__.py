"""The rules of incentives: campaigns, habit profiles, offers and their explanations. Pure Python, no I/O."""
