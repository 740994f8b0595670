"""The OpenFlow controller: an os-ken app that installs the dispatch pipeline, and its launcher."""
