//! `codegate projects list|create|update`.

use super::{parse_time, Remote};
use crate::output::{fmt_time, print_json, print_table};
use clap::{Args, Subcommand};
use codegate_client::{NewProject, Project, ProjectUpdate, Rules};

#[derive(Subcommand)]
pub enum ProjectsCmd {
    /// List projects with their code counts.
    List,
    /// Create a project.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<i64>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Change a project's name, description, status, expiry or code rules.
    Update {
        project_id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        #[arg(long, value_parser = parse_time, conflicts_with = "no_expiry")]
        expires_at: Option<i64>,
        /// Remove the expiry.
        #[arg(long)]
        no_expiry: bool,
        #[command(flatten)]
        rules: RuleArgs,
    },
}

/// How generated codes look.
#[derive(Args, Clone, Debug, Default)]
pub struct RuleArgs {
    /// Characters codes are made of.
    #[arg(long)]
    pub charset: Option<String>,
    /// Random characters per code.
    #[arg(long)]
    pub length: Option<usize>,
    #[arg(long)]
    pub prefix: Option<String>,
    #[arg(long)]
    pub suffix: Option<String>,
    /// Insert a dash every N characters.
    #[arg(long)]
    pub group: Option<usize>,
    /// Append a check character.
    #[arg(long)]
    pub check_char: bool,
}

impl RuleArgs {
    fn rules(&self) -> Option<Rules> {
        let r = Rules {
            charset: self.charset.clone(),
            length: self.length,
            prefix: self.prefix.clone(),
            suffix: self.suffix.clone(),
            group: self.group,
            check_char: self.check_char.then_some(true),
            normalize: None,
        };
        (!r.is_empty()).then_some(r)
    }
}

pub async fn run(remote: &Remote, cmd: ProjectsCmd) -> anyhow::Result<()> {
    let client = remote.client()?;
    match cmd {
        ProjectsCmd::List => {
            let projects = client.list_projects().await?;
            if remote.json {
                return print_json(&projects);
            }
            let rows: Vec<Vec<String>> = projects.iter().map(row).collect();
            print_table(&["ID", "NAME", "STATUS", "CODES", "USED", "EXPIRES", "CREATED"], &rows);
        }
        ProjectsCmd::Create { name, description, expires_at, disabled, rules } => {
            let p = client
                .create_project(&NewProject {
                    name,
                    description,
                    expires_at,
                    status: disabled.then_some(false),
                    rules: rules.rules(),
                })
                .await?;
            report(remote, "created", &p)?;
        }
        ProjectsCmd::Update { project_id, name, description, enable, disable, expires_at, no_expiry, rules } => {
            // The server replaces rules whole: merge the flags into the current ones.
            let rules = match rules.rules() {
                None => None,
                Some(new) => {
                    let current = client.project(&project_id).get_project().await?;
                    Some(merge(current.rules.unwrap_or_default(), new))
                }
            };
            let update = ProjectUpdate {
                name,
                description,
                status: match (enable, disable) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                expires_at: if no_expiry { Some(None) } else { expires_at.map(Some) },
                rules,
            };
            let p = client.update_project(&project_id, &update).await?;
            report(remote, "updated", &p)?;
        }
    }
    Ok(())
}

fn merge(current: Rules, new: Rules) -> Rules {
    Rules {
        charset: new.charset.or(current.charset),
        length: new.length.or(current.length),
        prefix: new.prefix.or(current.prefix),
        suffix: new.suffix.or(current.suffix),
        group: new.group.or(current.group),
        check_char: new.check_char.or(current.check_char),
        normalize: new.normalize.or(current.normalize),
    }
}

fn row(p: &Project) -> Vec<String> {
    let stats = p.statistics.clone().unwrap_or_default();
    vec![
        p.id.clone(),
        p.name.clone(),
        if p.status { "enabled" } else { "disabled" }.into(),
        stats.total_codes.to_string(),
        stats.used_codes.to_string(),
        fmt_time(p.expires_at),
        fmt_time(Some(p.created_at)),
    ]
}

fn report(remote: &Remote, verb: &str, p: &Project) -> anyhow::Result<()> {
    if remote.json {
        return print_json(p);
    }
    println!("{verb} project {} ({})", p.id, p.name);
    Ok(())
}
