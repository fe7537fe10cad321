"""Patient history: comparable visits, change since earlier visits and the risk flag."""
