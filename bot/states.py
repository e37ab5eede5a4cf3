from aiogram.fsm.state import State, StatesGroup


class CheckFlow(StatesGroup):
    """``/check`` was sent without a photo: the next photo is checked."""

    waiting_photo = State()
