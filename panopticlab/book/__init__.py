"""The book as a product: chapters as notebooks, the student and instructor editions,
the autograder, the runner with visible progress, and the HTML site.

``chapters``  where the chapter sources are and how one becomes a notebook
``exercises`` the exercise convention (solution markers, checker calls) and stripping
``editions``  the student edition and the instructor's answer key
``runner``    executing one notebook: profile, time limit per cell, progress lines
``build``     the whole book: executed notebooks, ``timings.json``, the site
``site``      the HTML pages with a table of contents and prev/next links
``grading``   the autograder for a student's notebook
"""
