"""Pure-Python tabular ML core: reading, profiling, cleaning, feature selection and extraction.

Nothing in this package imports Django: functions take bytes, frames and plain config and
return results, so they are unit-tested on frames and usable from a notebook.
"""
