"""Channel adapters: each turns its platform's updates into IncomingMessage and sends for the core.

Only the modules in this package import `telegram` or `wechatpy`.
"""
