"""The review package's error for input that cannot be used at all."""


class ReviewError(ValueError):
    """The queue or a decision file cannot be used at all (not one line's problem)."""
