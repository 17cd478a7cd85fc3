"""panopticlab: a runnable textbook on panoptic segmentation."""
from .profiles import Profile, get_profile, seed_everything, work_dir

__version__ = "0.1.0"
__all__ = ["Profile", "get_profile", "seed_everything", "work_dir", "__version__"]
