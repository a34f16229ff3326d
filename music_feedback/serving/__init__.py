"""The SageMaker-contract model server and the local front that speaks the SageMaker runtime's REST API."""
