"""Makes `import EmbedSeg.…` work with the embedseg 0.2.5 wheel, which installs
its modules (models/, criterions/, utils/, …) at the top level of site-packages
although its code imports them as EmbedSeg.*."""
import importlib.util
import os
import sys
import tempfile


def install():
    try:
        import EmbedSeg.models.BranchedERFNet  # noqa: F401
        return
    except ImportError:
        pass
    site = os.path.dirname(os.path.dirname(importlib.util.find_spec("criterions").origin))
    shim = os.path.join(tempfile.gettempdir(), "esx-embedseg-shim")
    pkg = os.path.join(shim, "EmbedSeg")
    os.makedirs(pkg, exist_ok=True)
    open(os.path.join(pkg, "__init__.py"), "a").close()
    for name in ["models", "criterions", "utils", "datasets", "train.py", "test.py"]:
        link = os.path.join(pkg, name)
        if not os.path.exists(link):
            os.symlink(os.path.join(site, name), link)
    sys.path.insert(0, shim)
