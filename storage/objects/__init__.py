"""Object stores: the interface, the filesystem backend and the S3 backend.

Nothing here imports boto3 until ``storage.objects.s3`` itself is imported, so a process
on the filesystem store never loads it.
"""
