"""EC2 API errors as the emulator sends them: an AWS error code, a message, an HTTP status.

These are the *emulated AWS's* errors (they become HTTP responses); they sit in vpcnet's
hierarchy as ``Ec2Error`` so that one error tree covers the whole project.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from vpcnet.errors import Ec2Error

# Codes AWS sends with a 5xx status; every other EC2 error code is a 400.
_SERVER_STATUS = {
    "InternalError": 500,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "Unavailable": 503,
    "RequestLimitExceeded": 503,
}


def status_for(code: str) -> int:
    return _SERVER_STATUS.get(code, 400)


class SimApiError(Ec2Error):
    """An error response of the emulated EC2 API."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(code, message)
        self.message = message
        self.status = status if status is not None else status_for(code)


def error_body(code: str, message: str, request_id: str) -> bytes:
    """The EC2 Query API error envelope, byte for byte the shape botocore parses."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error></Errors>"
        f"<RequestID>{escape(request_id)}</RequestID></Response>"
    ).encode()


# Constructors for the errors the rules raise, so wording stays in one place.


def not_found_eni(eni_id: str) -> SimApiError:
    return SimApiError(
        "InvalidNetworkInterfaceID.NotFound",
        f"The networkInterface ID '{eni_id}' does not exist",
    )


def malformed_eni(eni_id: str) -> SimApiError:
    return SimApiError(
        "InvalidNetworkInterfaceID.Malformed",
        f"Invalid id: \"{eni_id}\" (expecting \"eni-...\")",
    )


def not_found_instance(instance_id: str) -> SimApiError:
    return SimApiError(
        "InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist"
    )


def not_found_subnet(subnet_id: str) -> SimApiError:
    return SimApiError("InvalidSubnetID.NotFound", f"The subnet ID '{subnet_id}' does not exist")


def not_found_attachment(attachment_id: str) -> SimApiError:
    return SimApiError(
        "InvalidAttachmentID.NotFound",
        f"The attachment ID '{attachment_id}' does not exist",
    )


def invalid_value(message: str) -> SimApiError:
    return SimApiError("InvalidParameterValue", message)


def combination(message: str) -> SimApiError:
    return SimApiError("InvalidParameterCombination", message)


def missing(message: str) -> SimApiError:
    return SimApiError("MissingParameter", message)


def ip_limit() -> SimApiError:
    return SimApiError("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.")


def insufficient_addresses() -> SimApiError:
    return SimApiError(
        "InsufficientFreeAddressesInSubnet",
        "The specified subnet does not have enough free addresses to satisfy the request.",
    )


def insufficient_cidr_blocks() -> SimApiError:
    return SimApiError(
        "InsufficientCidrBlocks",
        "The specified subnet does not have enough free cidr blocks to satisfy the request.",
    )


def address_in_use(ip: str) -> SimApiError:
    return SimApiError("InvalidIPAddress.InUse", f"Address {ip} is in use.")


def eni_in_use(eni_id: str) -> SimApiError:
    return SimApiError("InvalidNetworkInterface.InUse", f"Interface: [{eni_id}] in use.")


def ipv6_limit() -> SimApiError:
    # The per-ENI limit is Ipv6AddressesPerInterface; a /80 prefix takes one slot.
    return SimApiError(
        "PrivateIpAddressLimitExceeded", "Number of IPv6 addresses will exceed limit."
    )


def no_ipv6_cidr(subnet_id: str) -> SimApiError:
    return SimApiError(
        "InvalidParameterValue",
        f"The subnet '{subnet_id}' does not have an IPv6 CIDR block associated with it; "
        "IPv6 addresses and prefixes cannot be assigned.",
    )
