"""Redis plumbing: the client factory, the embedded server and the Lua scripts."""
