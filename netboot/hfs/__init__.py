"""Reading HFS+ and HFSX volumes (Apple TN1150) from raw volumes, disks and UDIF images.

A macOS installer keeps the Mac's booter and kernelcache inside HFS+ volumes
inside `.dmg` images; reading them here is what lets a Linux server build a
NetInstall set. The reader is pure and streaming: every access is a
positioned read through the source it is given, B-tree nodes are read one at
a time, and file contents come out in bounded blocks, so a multi-gigabyte
installer is never inflated whole.
"""
