"""The node's MCP server: a sans-IO core (``server``, ``tools``, ``node_tools``, ``service``, ``services``,
``routing``, ``streamable``) and the asyncio side (``http``, ``runtime``, ``openai_http``). See docs/mcp.md."""
