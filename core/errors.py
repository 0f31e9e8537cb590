"""The project's error type: raised for bad input, with a message a person can act on."""


class MotionClipError(ValueError):
    """Bad input (a file, a field, a value); the message names it and says what to do."""
