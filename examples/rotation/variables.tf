variable "mount" {
  description = "Path the cryptokeys engine is mounted at."
  type        = string
  default     = "cryptokeys"
}

variable "environment" {
  description = "Environment of the role and its key."
  type        = string
  default     = "prod"
}

variable "key_ttl" {
  description = "Lifetime of each key (a Go duration)."
  type        = string
  default     = "720h"
}

variable "rotate_before" {
  description = "Replace the key once it is this close to expiring (a Go duration, shorter than key_ttl)."
  type        = string
  default     = "168h"
}

variable "rotation_epoch" {
  description = "Change to force an immediate rotation (e.g. an incident number)."
  type        = string
  default     = "1"
}
