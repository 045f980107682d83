"""Storage: the S3 client and the blob store that holds run files."""
