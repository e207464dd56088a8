-- One database per service: no service reads another's tables (SPEC section 2).
CREATE DATABASE auth;
CREATE DATABASE kyc;
CREATE DATABASE binding;
CREATE DATABASE refund;
