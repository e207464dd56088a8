-- One database per service: no service reads another's tables (SPEC section 2). Binding's
-- card vault keeps its own database too, so card numbers stay out of binding's backups.
CREATE DATABASE auth;
CREATE DATABASE kyc;
CREATE DATABASE binding;
CREATE DATABASE binding_vault;
CREATE DATABASE refund;
