"""lisalib: the helper package behind the lisalib-notebooks tutorial.

Each module holds one concept a chapter teaches (profiles, the shapes world, the model zoo, parameter
accounting, ...). Notebooks stay thin and call into these modules, which are unit-tested.
"""
from lisalib.cli import quiet_bitsandbytes
from lisalib.profile import Profile, get_profile

quiet_bitsandbytes()  # before anything imports bitsandbytes

__version__ = "0.1.0"
REPO_SLUG = "lisalib/lisalib-notebooks"  # GitHub owner/name used by the Colab badges and the Colab install cell
BRANCH = "main"

__all__ = ["Profile", "get_profile", "REPO_SLUG", "BRANCH", "__version__"]
