"""The crash suite: kill -9, SIGTERM, SIGHUP and full disks against every writer."""
