"""aiohttp handlers, one module per transport; each only moves frames to the dispatcher."""
