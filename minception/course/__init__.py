"""The minception course: graded exercises on the kernels a student writes, and a training run on them.

* ``exercises.py``     the catalog: the exercises in teaching order, their files, functions and solutions
* ``handout.py``       the student's files, written from the library's source (solution regions removed)
* ``public_tests.py``  the tests a student runs on a copy (``pytest DIR``)
* ``student_copy.py``  ``new DIR``: a student's copy (or, with ``--solutions``, the key)
* ``run.py``           ``run DIR``: train Inception-ResNet-v2 on the student's kernels, as the tier ``student``
* ``grader/``          ``check DIR``: grade a copy and say what the mistake likely is

Command line: ``python -m minception.course {new,check,run} ...`` (``__main__.py``). Nothing here is imported by
``import minception``.
"""
