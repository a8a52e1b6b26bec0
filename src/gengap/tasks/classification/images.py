"""The one resize every stage's pictures go through.

`prepare` is called by `ClassificationTask.images`, and every stage -- the difficulty pass,
SFT and GRPO training rows, evaluation, `gengap data` -- gets its pictures from there, so a
picture is seen at the same resolution everywhere. The DC-SFT study's code did not do this: it
trained with ``MAX_PIXELS=802816`` while its rollouts and evaluation used the processor's
default, so large images were seen at different resolutions in training and at test time.
"""

from __future__ import annotations

from PIL import Image

from gengap.images import resize_longest


def prepare(image: Image.Image, max_side: int | None) -> Image.Image:
    """`image` as RGB with its longer side scaled to `max_side` px (aspect kept; None: as is).

    Bicubic, up or down; the model's processor may resize again, but it then does so the same
    way in every stage because every stage starts from this picture.
    """
    image = image.convert("RGB") if image.mode != "RGB" else image
    return resize_longest(image, max_side)
