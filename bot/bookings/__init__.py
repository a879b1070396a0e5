"""Guided requests with their state in the database: bookings and vehicle registration."""
