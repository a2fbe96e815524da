"""ptychodus integration: a reconstructor library, its settings, the entry-point bridge and a launcher.

Everything under this subpackage may import ``ptychodus``; nothing else in the package does, so the
backend stays usable (command line, cluster nodes) where ptychodus is not installed. Submodules are not
imported here: the bridge must stay cheap to import from inside ptychodus's plugin loader.
"""

#: Entry-point group in which a distribution registers a ``ReconstructorLibrary`` class for ptychodus.
ENTRY_POINT_GROUP = "ptychodus.reconstructor_libraries"

#: Name of our library in ptychodus; algorithm keys are ``ptychodus-torch_<model type>``.
LIBRARY_NAME = "ptychodus-torch"

__all__ = ["ENTRY_POINT_GROUP", "LIBRARY_NAME"]
