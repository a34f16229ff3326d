"""Local stand-ins for the AWS services, on free loopback ports: the tests and `make demo-aws` run the
AWS adapter set against them (moto's server, an SES v2 stand-in, PostgreSQL for Redshift, DynamoDB Local,
the SageMaker front)."""
