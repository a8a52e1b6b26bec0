"""gengap: study and close the generalization gap between SFT and RL post-training."""

import os as _os

# Nothing downloads at run time: the hub libraries read these when they are first imported, so
# they are set before any of them is. A user who wants hub downloads sets them to 0 explicitly.
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
              "HF_HUB_DISABLE_TELEMETRY"):
    _os.environ.setdefault(_name, "1")
