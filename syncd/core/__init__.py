"""The pure core: domain model, wire parsing, staffing, health, allocation, planning, pacing.

Nothing here does I/O, awaits, or reads a clock: time always comes in as a parameter.
"""
