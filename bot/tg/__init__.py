"""The engine's Telegram side: staff topics, update receipts, staff links, and the outbox bridge."""
