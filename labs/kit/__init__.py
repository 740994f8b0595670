"""The labs' kit: a lab's definition and grader (:mod:`~labs.kit.grading`), and the Mininet
CLI that ``make run`` drops the student into (:mod:`~labs.kit.session`).

A lab's ``lab.py`` declares ``LAB = Lab(...)``; ``python -m labs.kit run|check|measure
LAB_DIR`` is what its Makefile calls (``make run``, ``check``, ``solution-check``,
``measure``). ``make run`` takes the options a lab reads with :func:`run_option` (``make run
RECOVERY=1``).
"""

from labs.kit.grading import (
    Check,
    Grade,
    Lab,
    LabFailure,
    RunSpec,
    flag_option,
    int_option,
    run_option,
)

__all__ = ["Check", "Grade", "Lab", "LabFailure", "RunSpec", "flag_option", "int_option",
           "run_option"]
