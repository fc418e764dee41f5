"""Shared foundations: errors, atomic file I/O, config files, constants, folder layouts, pictures."""
