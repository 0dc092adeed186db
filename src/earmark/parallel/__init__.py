"""Training on several processes and machines: torchrun's process group (``processes``)
and batch normalisation computed over all of them (``batchnorm``)."""
