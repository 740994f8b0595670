"""The labs' kit: a lab's definition and grader (:mod:`~labs.kit.grading`), and the Mininet
CLI that ``make run`` drops the student into (:mod:`~labs.kit.session`).

A lab's ``lab.py`` declares ``LAB = Lab(...)``; ``python -m labs.kit run|check LAB_DIR``
is what its Makefile calls.
"""

from labs.kit.grading import Check, Grade, Lab, LabFailure, RunSpec

__all__ = ["Check", "Grade", "Lab", "LabFailure", "RunSpec"]
