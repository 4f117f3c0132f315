//! A figment provider for one command-line override, so that provenance
//! ("set by `lr=1e-4`") survives layering like a file's does.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider, Source};

pub struct OverrideProvider {
    pub key: String,
    pub value: toml::Value,
    pub text: String,
}

impl Provider for OverrideProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("the command line (`{}`)", self.text))
            .source(Source::Custom(self.text.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let value = Value::serialize(&self.value)?;
        let dict = figment::util::nest(&self.key, value)
            .into_dict()
            .ok_or_else(|| Error::from(format!("cannot nest `{}`", self.key)))?;
        Ok(Profile::Default.collect(dict))
    }
}
