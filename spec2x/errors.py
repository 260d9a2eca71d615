"""Errors that the command line reports as one line, without a traceback."""


class Spec2xError(Exception):
    """A user-facing problem: bad input, missing reference, unsupported mode, unwritable output."""


class InputError(Spec2xError):
    """A problem with one named file."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class RefError(Spec2xError):
    """A reference file that a step needs is missing or does not match the exposure."""

    def __init__(self, step, reftype, problem):
        self.step, self.reftype = step, reftype
        super().__init__(f"{step}: reference '{reftype}': {problem}")


class NotImplementedForMode(Spec2xError):
    """A step of the mode's plan that spec2x does not have yet."""


class Interrupted(Spec2xError):
    """The run stopped before it finished (lost scheduler, cancelled cluster): the finished chunks and the
    journal are kept so ``--resume`` continues from them."""

    def __init__(self, problem):
        super().__init__(f"{problem}; the finished chunks are kept: run the same command with --resume")
