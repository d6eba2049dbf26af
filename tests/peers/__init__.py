"""Real-peer test harness: drive SIPp, baresip, linphonec, sipsak and Kamailio on loopback.

Modules: ``ports`` (free ports), ``procs`` (process groups, logs, bounded waits), ``sipp``,
``baresip``, ``linphone``, ``sipsak``, ``kamailio``, ``audio`` (WAV frequency/RMS). Each
wrapper's module docstring lists the tricks needed to run that peer headless. The ``procs``
fixture in ``tests/conftest.py`` owns the processes of one test.
"""
