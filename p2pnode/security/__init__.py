"""Security policies as small sans-IO pieces any protocol can call: token-bucket rate limits
(``ratelimit``) and capability-based access control (``access``). MCP uses both; the DHT and pub-sub can
use the same ones."""
