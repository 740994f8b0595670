"""The teaching labs: numbered lab folders (``labs/NN-name/``) and their kit (:mod:`labs.kit`).

A lab folder is not a Python package: it holds a README, the student's starter file, its
``solution/``, the lab's definition (``lab.py``) and a Makefile that includes
``labs/kit/lab.mk``. The kit loads ``lab.py`` and the student's file by path (as plugins,
:mod:`nfs.plugins`), so the same code runs in the grader, in every worker and in the shim.
"""
