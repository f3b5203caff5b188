//! The expressions of the consumer's versioned updates, and whether they fit DynamoDB's
//! limits: an expression string of at most 4 KB, measured as sent (placeholders not
//! substituted), and at most 300 operators and functions in one expression
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html#limits-expression-parameters>).

/// Longest expression string DynamoDB accepts, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Most operators and functions DynamoDB accepts in one expression.
pub const MAX_EXPRESSION_OPERATORS: usize = 300;

/// The update and condition expressions of one `UpdateItem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expressions {
    /// `SET #a0 = :a0, #v0 = :v0 REMOVE #a1`.
    pub update: String,
    /// `(attribute_not_exists(#v0) OR #v0 < :v0) AND ...`.
    pub condition: String,
    /// Operators and functions of the condition (the larger of the two counts).
    pub operators: usize,
}

impl Expressions {
    /// Whether DynamoDB accepts both expressions.
    pub fn fit(&self) -> bool {
        self.update.len() <= MAX_EXPRESSION_BYTES
            && self.condition.len() <= MAX_EXPRESSION_BYTES
            && self.operators <= MAX_EXPRESSION_OPERATORS
    }
}

/// The expressions of an update that sets (`true`) or removes (`false`) the attributes
/// `#a<i>` (values `:a<i>`), sets the version attributes `#v<j>` to `:v<j>`, and applies
/// only where every stored version is older (or absent).
pub fn versioned_update(
    attributes: impl IntoIterator<Item = bool>,
    versions: usize,
) -> Expressions {
    let mut sets = Vec::new();
    let mut removes = Vec::new();
    for (i, set) in attributes.into_iter().enumerate() {
        if set {
            sets.push(format!("#a{i} = :a{i}"));
        } else {
            removes.push(format!("#a{i}"));
        }
    }
    sets.extend((0..versions).map(|j| format!("#v{j} = :v{j}")));
    let mut update = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        update.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    let condition = (0..versions)
        .map(|j| format!("(attribute_not_exists(#v{j}) OR #v{j} < :v{j})"))
        .collect::<Vec<_>>()
        .join(" AND ");
    Expressions {
        update,
        condition,
        // Per version: attribute_not_exists, OR, <; and the ANDs between them.
        operators: (versions * 4).saturating_sub(1),
    }
}

/// The most attributes, each with its own version, that one update can set (found once:
/// the consumer asks for every row).
pub fn max_versioned_attributes() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        (1..)
            .take_while(|&n| versioned_update(std::iter::repeat_n(true, n), n).fit())
            .last()
            .unwrap_or(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_sets_removes_and_conditions() {
        let e = versioned_update([true, false], 1);
        assert_eq!(e.update, "SET #a0 = :a0, #v0 = :v0 REMOVE #a1");
        assert_eq!(e.condition, "(attribute_not_exists(#v0) OR #v0 < :v0)");
        assert!(e.fit());
    }

    #[test]
    fn the_operator_limit_bounds_attributes_with_their_own_versions() {
        let n = max_versioned_attributes();
        assert_eq!(n, 75, "4n - 1 <= 300");
        assert!(!versioned_update(std::iter::repeat_n(true, n + 1), n + 1).fit());
    }
}
