"""Lua scripting as a read-only replica runs it: EVAL, EVALSHA, SCRIPT, FCALL, FUNCTION.

(Filled in below as the package grows.)
"""
