from aiogram.fsm.state import State, StatesGroup


class PhotoFlow(StatesGroup):
    """``/check``, ``/faces`` or ``/analyze`` was sent without a photo.

    The state data holds ``operation`` (and its options); the next photo is used.
    """

    waiting = State()


class CompareFlow(StatesGroup):
    """``/compare``: waiting for the first photo, then for the second.

    The state data holds ``first``, the first photo's reference, once it came.
    """

    first = State()
    second = State()
