//! The refusals Ops Manager's clients tell apart by `errorCode`, with their statuses.

use axum::http::StatusCode;

use crate::error::Error;

pub fn invalid_group_id() -> Error {
    Error::Coded {
        status: StatusCode::BAD_REQUEST,
        code: "INVALID_GROUP_ID",
        message: "the project id must be 24 hexadecimal characters",
    }
}

pub fn group_not_found() -> Error {
    Error::Coded {
        status: StatusCode::NOT_FOUND,
        code: "GROUP_NOT_FOUND",
        message: "no project with this id exists",
    }
}

pub fn group_name_not_found() -> Error {
    Error::Coded {
        status: StatusCode::NOT_FOUND,
        code: "GROUP_NAME_NOT_FOUND",
        message: "no project with this name exists",
    }
}

/// The project is another organization's, or the caller has no role in it.
pub fn not_in_group() -> Error {
    Error::Coded {
        status: StatusCode::UNAUTHORIZED,
        code: "NOT_IN_GROUP",
        message: "the caller is not in this project",
    }
}

pub fn group_name_taken() -> Error {
    Error::Coded {
        status: StatusCode::CONFLICT,
        code: "GROUP_ALREADY_EXISTS",
        message: "the organization already has a project of this name",
    }
}

pub fn invalid_org_id() -> Error {
    Error::Coded {
        status: StatusCode::BAD_REQUEST,
        code: "INVALID_ORG_ID",
        message: "the organization id must be 24 hexadecimal characters",
    }
}

/// Callers see only their own organization; any other id is unknown to them.
pub fn org_not_found() -> Error {
    Error::Coded {
        status: StatusCode::NOT_FOUND,
        code: "ORG_NOT_FOUND",
        message: "no organization with this id exists",
    }
}

pub fn address_not_allowed() -> Error {
    Error::Coded {
        status: StatusCode::FORBIDDEN,
        code: "IP_ADDRESS_NOT_ON_WHITELIST",
        message: "the request's address is not on the API key's access list",
    }
}
