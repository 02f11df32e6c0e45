"""The sector UDIF counts in.

Every sector number and count in a UDIF image (the koly trailer, the mish
tables, the partition maps we read and write) is in 512-byte units, whatever
the physical sector size of the disk the image was made from.
"""

SECTOR = 512
