//! `dashboard_users`: dashboard accounts. Only an Argon2id hash of each password is
//! stored (PHC string: algorithm, parameters, random salt, hash), never the password;
//! [`verify`] recomputes the hash and compares in constant time (argon2's
//! `verify_password`).

use super::DASHBOARD_USERS;
use super::update::update;
use crate::engine::Tables;
use crate::engine::Txn;
use crate::engine::typed::Typed;
use crate::error::{Error, Result};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// A dashboard user (its password only as an Argon2id hash).
pub struct User {
    /// The login.
    pub username: String,
    /// PHC string of the Argon2id hash.
    pub password_hash: String,
    /// Its role (`administrator`, `viewer`, …).
    pub role: String,
    /// Free text.
    pub description: String,
}

const TABLE: Typed<String, User> = Typed::new(DASHBOARD_USERS);

fn hash(password: &str) -> Result<String> {
    if password.is_empty() {
        return Err(Error::InvalidTxn("an empty password".into()));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Invariant(format!("hash password: {e}")))
}

/// Adds a user; an existing username is a conflict.
pub async fn add(node: &impl Tables, username: &str, password: &str, role: &str, description: &str) -> Result<()> {
    let user = User {
        username: username.into(),
        password_hash: hash(password)?,
        role: role.into(),
        description: description.into(),
    };
    let txn =
        TABLE.put(Txn::new().require_absent(DASHBOARD_USERS, username.as_bytes()), &username.to_string(), &user)?;
    node.transact(txn).await.map(|_| ())
}

/// Replaces the password of `username`.
pub async fn set_password(node: &impl Tables, username: &str, password: &str) -> Result<()> {
    let new_hash = hash(password)?;
    update(node, TABLE, &username.to_string(), |old| {
        let mut u = old.ok_or_else(|| Error::InvalidTxn(format!("no user `{username}`")))?;
        u.password_hash = new_hash.clone();
        Ok(Some(u))
    })
    .await
    .map(|_| ())
}

/// Whether `password` is `username`'s; an unknown user is `false`.
pub async fn verify(node: &impl Tables, username: &str, password: &str) -> Result<bool> {
    let Some(u) = get(node, username).await? else { return Ok(false) };
    let parsed = PasswordHash::new(&u.password_hash).map_err(|e| Error::corrupt("password hash", e.to_string()))?;
    Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// The user `username`.
pub async fn get(node: &impl Tables, username: &str) -> Result<Option<User>> {
    Ok(TABLE.values(&node.get(DASHBOARD_USERS, username.as_bytes()).await?)?.pop())
}

/// Deletes the user `username`.
pub async fn delete(node: &impl Tables, username: &str) -> Result<()> {
    node.transact(TABLE.delete(Txn::new(), &username.to_string())).await.map(|_| ())
}
