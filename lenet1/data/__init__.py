"""Getting MNIST: the download sources, the IDX format, the stratified split and the model inputs."""
